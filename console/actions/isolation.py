"""Isolate / unisolate: quarantine a container on its own node, with the state kept on that node.

Labels are immutable, so the state cannot go on the container. It goes on the quarantine
network, created at isolation time: ``berth-q-<id12>``, internal (no egress), labelled
``berth.role=isolation``, ``berth.target=<id>`` and ``berth.state=<JSON>`` with everything
unisolate needs to restore exactly (networks with aliases and static addresses, restart policy,
limits, paused state) and who/when/why. Any console (the poller reads the label) sees it and
can undo it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from console.actions import engine_ops as ops
from console.actions.types import ActionError
from console.engine.client import EngineClient
from console.engine.errors import EngineError

LIMIT_KEYS = ("Memory", "MemorySwap", "NanoCpus", "CpuQuota", "CpuPeriod")


def quarantine_name(cid: str) -> str:
    return f"berth-q-{cid[:12]}"


def endpoint_config(cid: str, ep: dict[str, Any]) -> dict[str, Any]:
    """What to pass back to connect/create to recreate an endpoint (the automatic short-id alias dropped)."""
    aliases = [a for a in (ep.get("Aliases") or []) if a != cid[:12]]
    out: dict[str, Any] = {}
    if aliases:
        out["Aliases"] = list(dict.fromkeys(aliases))
    ipam = {k: v for k, v in (ep.get("IPAMConfig") or {}).items() if v}
    if ipam:
        out["IPAMConfig"] = ipam
    if ep.get("Links"):
        out["Links"] = list(ep["Links"])
    if ep.get("DriverOpts"):
        out["DriverOpts"] = dict(ep["DriverOpts"])
    return out


def network_mode_refusal(doc: dict[str, Any]) -> str | None:
    mode = str((doc.get("HostConfig") or {}).get("NetworkMode") or "")
    if mode == "host":
        return "uses host networking"
    if mode.startswith("container:"):
        return f"shares the network of {mode.partition(':')[2][:12]}"
    return None


async def isolation_state(client: EngineClient, cid: str) -> dict[str, Any] | None:
    """The recorded state if ``cid`` is isolated on this node."""
    net = await ops.inspect_network(client, quarantine_name(cid))
    if net is None:
        return None
    labels = net.get("Labels") or {}
    if labels.get(ops.ROLE) != "isolation":
        return None
    try:
        state = json.loads(labels.get(ops.STATE) or "{}")
    except ValueError:
        state = {}
    state["network_id"] = net.get("Id")
    return state


async def record(client: EngineClient, doc: dict[str, Any]) -> dict[str, Any]:
    """Evidence taken before anything changes: logs tail, processes, port map, filesystem diff summary."""
    cid = doc["Id"]
    out: dict[str, Any] = {"ports": (doc.get("NetworkSettings") or {}).get("Ports") or {}}
    try:
        out["logs_tail"] = (await ops.logs_tail(client, cid, 50, bool((doc.get("Config") or {}).get("Tty"))))[-8000:]
    except EngineError as exc:
        out["logs_tail_error"] = str(exc)
    if (doc.get("State") or {}).get("Running"):
        try:
            top = await client.top(cid)
            out["top"] = {"titles": top.get("Titles"), "processes": (top.get("Processes") or [])[:50]}
        except EngineError as exc:
            out["top_error"] = str(exc)
    try:
        changes = await client.changes(cid)
        kinds = Counter({0: "modified", 1: "added", 2: "deleted"}.get(int(c.get("Kind") or 0), "?")
                        for c in changes)
        out["fs_diff"] = {"counts": dict(kinds), "paths": [f"{'MAD'[c.get('Kind', 0)]} {c.get('Path')}"
                                                           for c in changes[:40]]}
    except EngineError as exc:
        out["fs_diff_error"] = str(exc)
    return out


def _cpu_update(host: dict[str, Any], cpus: float) -> dict[str, Any]:
    if host.get("CpuQuota") and not host.get("NanoCpus"):
        period = host.get("CpuPeriod") or 100000
        return {"CpuPeriod": period, "CpuQuota": int(cpus * period)}
    return {"NanoCpus": int(cpus * 1e9)}


async def isolate(client: EngineClient, doc: dict[str, Any], *, who: str, why: str, freeze: bool = False,
                  cpus: float | None = None, memory: int | None = None,
                  step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    cid = doc["Id"]
    refusal = network_mode_refusal(doc)
    if refusal:
        raise ActionError(f"cannot isolate {doc.get('Name', '').lstrip('/')}: it {refusal}; stop it instead")
    host = doc.get("HostConfig") or {}
    state_doc = doc.get("State") or {}
    nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    mode = str(host.get("NetworkMode") or "default")
    state: dict[str, Any] = {
        "v": 1, "who": who, "when": time.time(), "why": why,
        "network_mode": mode,
        "networks": {name: endpoint_config(cid, ep) for name, ep in nets.items() if name != "none"},
        "restart_policy": host.get("RestartPolicy") or {"Name": "no"},
        "limits": {k: host.get(k) or 0 for k in LIMIT_KEYS},
        "paused_before": bool(state_doc.get("Paused")),
        "froze": False, "capped": {},
    }
    step("recording evidence")
    evidence = await record(client, doc)
    attach = mode != "none"
    net_body = {
        "Name": quarantine_name(cid), "Driver": "bridge", "Internal": True, "Attachable": False,
        "Labels": {ops.ROLE: "isolation", ops.TARGET: cid, ops.STATE: json.dumps(state, separators=(",", ":"))},
    }
    step("creating quarantine network")
    try:
        await ops.create_network(client, net_body)
    except EngineError as exc:
        if "already exists" in str(exc):
            raise ActionError(f"{client.name}: {cid[:12]} is already isolated") from None
        raise
    done: list[str] = []
    try:
        if attach:
            step("attaching to quarantine network")
            await ops.connect(client, quarantine_name(cid), cid)
        for name in state["networks"]:
            step(f"disconnecting from {name}")
            await ops.disconnect(client, name, cid, force=True)
            done.append(name)
        if (state["restart_policy"].get("Name") or "no") != "no":
            step("restart policy: no")
            await ops.update(client, cid, {"RestartPolicy": {"Name": "no"}})
        caps: dict[str, Any] = {}
        if cpus:
            caps.update(_cpu_update(host, cpus))
        if memory:
            caps.update({"Memory": memory, "MemorySwap": memory})
        if caps:
            step("capping " + ", ".join(f"{k}={v}" for k, v in caps.items()))
            await ops.update(client, cid, caps)
        if freeze and state_doc.get("Running") and not state_doc.get("Paused"):
            step("freezing (pause)")
            await client.container_action(cid, "pause")
    except EngineError:
        # Undo what was done, so a failed isolation leaves the container as it was.
        for name in done:
            await ops.best_effort(ops.connect(client, name, cid, state["networks"][name]))
        await ops.best_effort(ops.disconnect(client, quarantine_name(cid), cid, force=True))
        await ops.best_effort(ops.update(client, cid, {"RestartPolicy": state["restart_policy"]}))
        await ops.best_effort(ops.remove_network(client, quarantine_name(cid)))
        raise
    return {"evidence": evidence, "state": state, "quarantine": quarantine_name(cid)}


def _restore_limits(saved: dict[str, Any], current: dict[str, Any], node_info: dict[str, Any]
                    ) -> tuple[dict[str, Any], list[str]]:
    """The update body that brings limits back. The Engine API cannot clear a limit (0 means
    "unchanged"), so a cap on an uncapped container is lifted to the node's whole size instead."""
    body: dict[str, Any] = {}
    notes: list[str] = []
    if current.get("Memory") != saved.get("Memory"):
        if saved.get("Memory"):
            body["Memory"] = saved["Memory"]
            body["MemorySwap"] = saved.get("MemorySwap") or -1
        else:
            body["Memory"] = int(node_info.get("MemTotal") or 0) or 1 << 40
            body["MemorySwap"] = -1
            notes.append("memory cap lifted to the node's total (the Engine API cannot clear a limit)")
    if current.get("NanoCpus") != saved.get("NanoCpus"):
        if saved.get("NanoCpus"):
            body["NanoCpus"] = saved["NanoCpus"]
        else:
            body["NanoCpus"] = int(node_info.get("NCPU") or 1) * 1_000_000_000
            notes.append("CPU cap lifted to all the node's CPUs (the Engine API cannot clear a limit)")
    if current.get("CpuQuota") != saved.get("CpuQuota") and saved.get("CpuQuota"):
        body["CpuQuota"] = saved["CpuQuota"]
        body["CpuPeriod"] = saved.get("CpuPeriod") or current.get("CpuPeriod")
    return body, notes


def _policy_key(policy: dict[str, Any]) -> tuple[str, int]:
    return (str(policy.get("Name") or "no"), int(policy.get("MaximumRetryCount") or 0))


def update_refusal(engine: str, doc: dict[str, Any], params: dict[str, Any]) -> str | None:
    """Why isolation cannot apply on this engine, or None. Podman's Docker-compatible API has no
    `POST /containers/{id}/update` (404 up to its 4.x): isolating there is honest only when
    nothing must be updated, i.e. the restart policy is already `no` and no cap is asked for."""
    if engine != "podman":
        return None
    policy = str(((doc.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no")
    if policy != "no":
        return (f"its restart policy is {policy} and Podman's Docker-compatible API cannot update a "
                "container to set it to no")
    if params.get("cpus") or params.get("memory"):
        return "Podman's Docker-compatible API cannot update a container to cap it"
    return None


async def unisolate(client: EngineClient, doc: dict[str, Any], state: dict[str, Any],
                    step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    cid = doc["Id"]
    qname = quarantine_name(cid)
    st = doc.get("State") or {}
    notes: list[str] = []
    if st.get("Paused") and not state.get("paused_before"):
        step("unfreezing (unpause)")
        await client.container_action(cid, "unpause")
    attached = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    for name, endpoint in (state.get("networks") or {}).items():
        if name in attached:
            continue
        step(f"reconnecting to {name}")
        await ops.connect(client, name, cid, endpoint)
    if qname in attached:
        step("leaving quarantine network")
        await ops.disconnect(client, qname, cid, force=True)
    policy = state.get("restart_policy") or {"Name": "no"}
    current = (doc.get("HostConfig") or {}).get("RestartPolicy") or {"Name": "no"}
    limits, notes = _restore_limits(state.get("limits") or {}, doc.get("HostConfig") or {}, await client.info())
    # Only what differs: an engine without container update (Podman's compat API) can still be
    # unisolated when isolation never had to change the policy or the limits.
    if limits or _policy_key(policy) != _policy_key(current):
        step("restoring restart policy and limits")
        await ops.update(client, cid, {"RestartPolicy": policy, **limits})
    step("removing quarantine network")
    await ops.remove_network(client, qname)
    return {"restored": {k: state.get(k) for k in ("networks", "restart_policy", "limits")}, "notes": notes}
