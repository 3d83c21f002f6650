"""Fleets read back from Prometheus: the `berth_*` series of every shard as one FleetSnapshot.

``PromReader.snapshot()`` issues a fixed set of instant queries (``QUERIES``, concurrently; then
``NOT_LIVE_QUERIES`` over the nodes that are not live, when there are any) and
builds the same frozen snapshot the local poller publishes, so `berth status --prometheus URL`
and `berth --prometheus URL` show the same panes and JSON keys. Node and tenant totals are
recomputed from the containers with the model's own code (console.fleet.density), exactly as
the poller does.

Ages come from the samples' timestamps: a node's data age is the age of its newest scraped
sample plus the age the exporter reported at that scrape. A shard that stops reporting has its
series marked stale by Prometheus: its nodes (still known from the last hour through
``last_over_time``) come back as down with "no data", their containers as stale, and never as zeros.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import math
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from console.fleet import density
from console.fleet.model import (
    ContainerSnapshot,
    FleetSnapshot,
    NodeSnapshot,
    NodeState,
)
from console.metrics.collector import NODE_INFO_LABELS

REMEMBER = "1h"  # how far back a node that stopped reporting is still listed (as down)

# name -> PromQL; each answered as an instant vector at the same evaluation time.
QUERIES: dict[str, str] = {
    "node": '{__name__=~"berth_node_(up|state|info|data_age_seconds|cpus|memory_bytes|cordoned)"}',
    "node_seen": "timestamp(berth_node_up)",
    "container": '{__name__=~"berth_container_(info|cpu_usage_cores|cpu_limit_cores|memory_usage_bytes'
                 '|memory_limit_bytes|restarts_total|isolated|oom_killed|start_time_seconds)"}',
    "quota": '{__name__=~"berth_tenant_(cpu_quota_cores|memory_quota_bytes)"}',
    # Nodes that are not live now (down, or their shard stopped reporting within REMEMBER): their
    # last known capacity and container figures, shown as stale like the poller's down nodes.
    "gone_info": f"last_over_time(berth_node_info[{REMEMBER}]) unless on (node) berth_node_up",
    "gone_seen": f"last_over_time(berth_node_data_timestamp_seconds[{REMEMBER}]) unless on (node) berth_node_up",
    "last_cpus": f"last_over_time(berth_node_cpus[{REMEMBER}]) unless on (node) (berth_node_up == 1)",
    "last_mem": f"last_over_time(berth_node_memory_bytes[{REMEMBER}]) unless on (node) (berth_node_up == 1)",
}
# Only when some node is not live, and only over those nodes' series (`{nodes}` is a node matcher):
# ranges over every container of the fleet would cost the server seconds at 10,000 containers.
NOT_LIVE_QUERIES: dict[str, str] = {
    "gone_containers": f"last_over_time(berth_container_info{{{{{{nodes}}}}}}[{REMEMBER}])"
                       " unless on (node) berth_node_up",
    "last_cpu": f"last_over_time(berth_container_cpu_usage_cores{{{{{{nodes}}}}}}[{REMEMBER}])",
    "last_mem_used": f"last_over_time(berth_container_memory_usage_bytes{{{{{{nodes}}}}}}[{REMEMBER}])",
    "last_cpu_limit": f"last_over_time(berth_container_cpu_limit_cores{{{{{{nodes}}}}}}[{REMEMBER}])",
    "last_mem_limit": f"last_over_time(berth_container_memory_limit_bytes{{{{{{nodes}}}}}}[{REMEMBER}])",
}


GONE = "no data in Prometheus: its Berth shard stopped reporting"


class PromError(Exception):
    """Prometheus could not be read: one line naming the URL and what went wrong."""


@dataclass(frozen=True, slots=True)
class PromAuth:
    """How to reach the Prometheus HTTP API. TLS is verified unless ``verify`` is False."""

    token: str | None = None  # bearer
    user: str | None = None  # basic auth, with password
    password: str | None = None
    ca: Path | None = None  # CA bundle for a private CA
    verify: bool = True
    timeout: float = 30.0


def _tls(auth: PromAuth) -> ssl.SSLContext | bool:
    if not auth.verify:
        return False
    if auth.ca is not None:
        return ssl.create_default_context(cafile=str(auth.ca))
    return True


Vector = list[tuple[dict[str, str], float]]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PromReader:
    """Reads one Prometheus (or Thanos Query, VictoriaMetrics: anything with /api/v1/query)."""

    def __init__(self, url: str, auth: PromAuth | None = None) -> None:
        self.url = url.rstrip("/")
        self.auth = auth or PromAuth()
        headers = {"Accept": "application/json"}
        host = (httpx.URL(self.url).host or "").strip("[]")
        if host == "localhost" or _loopback(host):
            # Answers run to tens of MB at 10,000 containers: on this machine compressing them costs
            # both ends more CPU than the copy it saves; across a network gzip stays (httpx's default).
            headers["Accept-Encoding"] = "identity"
        if self.auth.token:
            headers["Authorization"] = f"Bearer {self.auth.token}"
        basic = (self.auth.user, self.auth.password or "") if self.auth.user is not None else None
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, auth=basic, verify=_tls(self.auth),
                                         timeout=self.auth.timeout)
        self._seq = itertools.count(1)
        self.last_cost: dict[str, float] = {}  # query name -> server-side seconds, when the server says
        self.queries = 0  # how many the last snapshot took

    async def aclose(self) -> None:
        await self._client.aclose()

    async def query(self, promql: str, at: float, name: str = "") -> Vector:
        try:
            resp = await self._client.post("/api/v1/query", data={"query": promql, "time": f"{at:.3f}",
                                                                  "stats": "all"})
        except httpx.HTTPError as exc:
            raise PromError(f"prometheus {self.url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code in (401, 403):
            raise PromError(f"prometheus {self.url}: {resp.status_code} {resp.reason_phrase} "
                            "(check the token or user and password)")
        try:
            doc = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise PromError(f"prometheus {self.url}: {resp.status_code} {resp.reason_phrase}: not a Prometheus API "
                            f"answer ({resp.headers.get('content-type', 'no content type')})") from None
        if doc.get("status") != "success":
            raise PromError(f"prometheus {self.url}: {doc.get('errorType', resp.status_code)}: "
                            f"{doc.get('error', 'query failed')}")
        data = doc["data"]
        timings = (data.get("stats") or {}).get("timings") or {}
        if name and "evalTotalTime" in timings:
            self.last_cost[name] = float(timings["evalTotalTime"])
        if data.get("resultType") != "vector":
            raise PromError(f"prometheus {self.url}: expected a vector, got {data.get('resultType')}")
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    async def snapshot(self, now: float | None = None) -> FleetSnapshot:
        now = time.time() if now is None else now
        names = list(QUERIES)
        answers = dict(zip(names, await asyncio.gather(*(self.query(QUERIES[n], now, n) for n in names)),
                           strict=True))
        not_live = sorted({labels["node"] for labels, v in answers["node"]
                           if labels.get("__name__") == "berth_node_up" and v != 1.0 and labels.get("node")}
                          | {labels["node"] for labels, _ in answers["gone_info"] if labels.get("node")})
        self.queries = len(names)
        if not_live:
            matcher = "node=~`" + "|".join(re.escape(n) for n in not_live) + "`"
            more = list(NOT_LIVE_QUERIES)
            got = await asyncio.gather(*(self.query(NOT_LIVE_QUERIES[n].format(nodes=matcher), now, n) for n in more))
            answers.update(zip(more, got, strict=True))
            self.queries += len(more)
        else:
            answers.update((n, []) for n in NOT_LIVE_QUERIES)
        return build_snapshot(answers, now, next(self._seq))


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


def build_snapshot(answers: Mapping[str, Vector], now: float, seq: int = 1) -> FleetSnapshot:
    """The FleetSnapshot that ``answers`` (QUERIES' results at ``now``) describe."""
    nodes: dict[str, dict[str, Any]] = {}
    for labels, v in answers["node"]:
        node = labels.get("node")
        if not node:
            continue
        n = nodes.setdefault(node, {"info": {}})
        name = labels["__name__"]
        if name == "berth_node_state":
            if v == 1.0:
                n["state"] = labels.get("state", "")
        elif name == "berth_node_info":
            n["info"] = labels
        else:
            n[name] = v
    seen = {labels["node"]: v for labels, v in answers["node_seen"] if "node" in labels}

    containers: list[ContainerSnapshot] = []
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for labels, v in answers["container"]:
        key = (labels.get("node", ""), labels.get("container", ""))
        c = per.setdefault(key, {})
        name = labels["__name__"]
        if name == "berth_container_info":
            c["info"] = labels
        else:
            c[name] = v

    # last known figures for nodes that are not live now
    capacity: dict[str, dict[str, float]] = {}
    for field, metric in (("last_cpus", "berth_node_cpus"), ("last_mem", "berth_node_memory_bytes")):
        for labels, v in answers[field]:
            capacity.setdefault(labels.get("node", ""), {})[metric] = v
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for field, metric in (("last_cpu", "berth_container_cpu_usage_cores"),
                          ("last_mem_used", "berth_container_memory_usage_bytes"),
                          ("last_cpu_limit", "berth_container_cpu_limit_cores"),
                          ("last_mem_limit", "berth_container_memory_limit_bytes")):
        for labels, v in answers[field]:
            last.setdefault((labels.get("node", ""), labels.get("container", "")), {})[metric] = v

    out_nodes: list[NodeSnapshot] = []
    live: set[str] = set()
    for name, n in sorted(nodes.items()):
        try:
            state = NodeState(n.get("state", "down"))
        except ValueError:
            state = NodeState.DOWN
        scraped = seen.get(name)
        reported = n.get("berth_node_data_age_seconds")
        age = None if scraped is None or reported is None else max(0.0, now - scraped) + reported
        if state in (NodeState.UP, NodeState.DEGRADED):
            live.add(name)
        n.update(state=state, age=age, sampled=None if age is None else now - age)
        if name not in live:
            n = {**capacity.get(name, {}), **n}
        out_nodes.append(_node(name, n, state, age, None))

    for key, c in per.items():
        info = c.get("info")
        if info is None:
            continue
        if key[0] not in live:
            c = {**c, **last.get(key, {})}
        sampled = nodes.get(key[0], {}).get("sampled")
        containers.append(_container(info, c, stale=key[0] not in live, sampled_at=sampled))

    # Nodes whose shard stopped reporting: known from the last REMEMBER, down, their figures the last known.
    gone: dict[str, dict[str, Any]] = {}
    for labels, _ in answers["gone_info"]:
        gone.setdefault(labels.get("node", ""), {})["info"] = labels
    for labels, v in answers["gone_seen"]:
        gone.setdefault(labels.get("node", ""), {})["seen"] = v
    for name, g in sorted(gone.items()):
        if not name or name in nodes:
            continue
        last_seen = g.get("seen")
        age = None if last_seen is None else max(0.0, now - last_seen)
        error = GONE
        g.setdefault("info", {})
        out_nodes.append(_node(name, {**g, **capacity.get(name, {})}, NodeState.DOWN, age, error,
                               error_at=last_seen))
    gone_names = {n.name for n in out_nodes if n.name in gone and n.name not in nodes}
    known = {(c.node, c.name) for c in containers}
    for labels, _ in answers["gone_containers"]:
        key = (labels.get("node", ""), labels.get("container", ""))
        if key[0] in gone_names and key not in known:
            known.add(key)
            containers.append(_container(labels, last.get(key, {}), stale=True, sampled_at=None))

    by_node: dict[str, list[ContainerSnapshot]] = {}
    for cs in containers:
        by_node.setdefault(cs.node, []).append(cs)
    out_nodes = [_with_density(n, by_node.get(n.name, [])) for n in out_nodes]
    quotas: dict[str, tuple[float | None, int | None]] = {}
    for labels, v in answers["quota"]:
        tenant = labels.get("tenant", "")
        cpu, mem = quotas.get(tenant, (None, None))
        if labels["__name__"] == "berth_tenant_cpu_quota_cores":
            cpu = v if cpu is None else max(cpu, v)
        else:
            mem = int(v) if mem is None else max(mem, int(v))
        quotas[tenant] = (cpu, mem)
    complete = all(all(c.cpu_percent is not None for c in by_node.get(n.name, []) if c.live_running)
                   for n in out_nodes if n.live)
    return FleetSnapshot(taken_at=now, seq=seq, nodes=tuple(sorted(out_nodes, key=lambda n: n.name)),
                         containers=tuple(containers), tenants=density.tenants(containers, quotas),
                         complete=complete)


def _node(name: str, n: Mapping[str, Any], state: NodeState, age: float | None, error: str | None,
          error_at: float | None = None) -> NodeSnapshot:
    info: Mapping[str, str] = n.get("info") or {}
    labels = tuple(sorted((k, v) for k, v in info.items()
                          if k not in NODE_INFO_LABELS and k not in ("__name__", "instance", "job") and v))
    cpus = int(n.get("berth_node_cpus") or 0)
    mem_total = int(n.get("berth_node_memory_bytes") or 0)
    return NodeSnapshot(
        name=name, url=f"prometheus:{info.get('instance', '')}", state=state,
        error=error if error else (None if state is NodeState.UP else f"{state.value} (as its Berth shard reports)"),
        error_at=error_at, data_age=age, labels=labels, cpus=cpus, mem_total=mem_total,
        engine_version=info.get("engine_version", ""), api_version=info.get("api_version", ""),
        kernel=info.get("kernel", ""), os=info.get("os", ""), cgroup_version=info.get("cgroup_version", ""),
        density=density.node_density(cpus, mem_total, ()), cordoned=n.get("berth_node_cordoned") == 1.0,
        engine=info.get("engine") or "docker",  # shards from before the label were all dockerd-read
    )


def _with_density(n: NodeSnapshot, containers: list[ContainerSnapshot]) -> NodeSnapshot:
    from dataclasses import replace

    return replace(n, density=density.node_density(n.cpus, n.mem_total, containers))


def _container(info: Mapping[str, str], c: Mapping[str, float], *, stale: bool,
               sampled_at: float | None) -> ContainerSnapshot:
    cpu = _num(c.get("berth_container_cpu_usage_cores"))
    mem = _num(c.get("berth_container_memory_usage_bytes"))
    mem_limit = _num(c.get("berth_container_memory_limit_bytes"))
    started = _num(c.get("berth_container_start_time_seconds"))
    state = info.get("state", "")
    return ContainerSnapshot(
        id=info.get("id", ""), name=info.get("container", ""), node=info.get("node", ""),
        tenant=info.get("tenant", ""), image=info.get("image", ""), state=state, status="", created=0.0,
        started_at=started, cpu_percent=None if cpu is None else cpu * 100.0,
        mem_used=None if mem is None else int(mem), mem_limit=None if mem_limit is None else int(mem_limit),
        cpu_limit=_num(c.get("berth_container_cpu_limit_cores")),
        restart_count=int(c.get("berth_container_restarts_total") or 0), health=None,
        oom_killed=c.get("berth_container_oom_killed") == 1.0, isolated=c.get("berth_container_isolated") == 1.0,
        sampled_at=sampled_at if cpu is not None else None, stale=stale,
    )
