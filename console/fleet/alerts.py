"""Alerts derived from one snapshot: pure, deterministic, no Textual, no I/O.

`derive_alerts(snapshot, thresholds, now)` answers "what needs an operator's
eyes right now" from the frozen snapshot alone, so the UI strip, `berth status`
and tests all agree. Every alert names the object to jump to.

Restart loops are an approximation: the Engine API only reports a container's
cumulative `RestartCount`, not when each restart happened. A container counts
as looping when `restart_count >= thresholds.restart_loop` *and* it is
restarting right now or (re)started within `thresholds.restart_window`
seconds of `now` — a container that restarted three times last week and has
run quietly since is not flagged. A container that keeps crashing faster than
the poller sees it still shows up through its `restarting` state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from console.fleet.model import FleetSnapshot, NodeState


class Thresholds(Protocol):
    """The fields of console.config.AlertThresholds that alerts read."""

    @property
    def cpu_density(self) -> float: ...
    @property
    def mem_density(self) -> float: ...
    @property
    def cpu_committed(self) -> float: ...
    @property
    def mem_committed(self) -> float: ...
    @property
    def stale_after(self) -> float: ...
    @property
    def restart_loop(self) -> int: ...
    @property
    def restart_window(self) -> float: ...


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Alert:
    severity: Severity
    kind: str  # node-down, node-degraded, node-stale, fleet-stale, oom-killed, restart-loop, unhealthy,
    # tenant-cpu-quota, tenant-mem-quota, cpu-density, mem-density, cpu-committed, mem-committed
    subject_kind: str  # "node" | "container" | "tenant" | "fleet"
    subject: str  # node name, container id, tenant name ("" for the fleet)
    text: str  # one line for the operator, naming the object
    node: str | None = None  # where the subject lives (containers), for grouping and jumping

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.subject_kind, self.subject)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


def derive_alerts(snapshot: FleetSnapshot, thresholds: Thresholds, now: float) -> list[Alert]:
    """Every alert the snapshot supports, most severe first, then by kind and subject."""
    out: list[Alert] = []
    snap_age = now - snapshot.taken_at
    if snap_age > thresholds.stale_after:
        out.append(Alert(Severity.CRITICAL, "fleet-stale", "fleet", "",
                         f"no fresh snapshot for {snap_age:.0f}s: everything shown is old"))
    for n in snapshot.nodes:
        if n.state is NodeState.DOWN:
            out.append(Alert(Severity.CRITICAL, "node-down", "node", n.name,
                             f"{n.name} down" + (f": {n.error}" if n.error else "")))
            continue
        if n.state is NodeState.DEGRADED:
            out.append(Alert(Severity.WARNING, "node-degraded", "node", n.name,
                             f"{n.name} degraded" + (f": {n.error}" if n.error else "")))
        if n.data_age is not None and n.data_age > thresholds.stale_after:
            out.append(Alert(Severity.WARNING, "node-stale", "node", n.name,
                             f"{n.name} data {n.data_age:.0f}s old (stale after {thresholds.stale_after:g}s)"))
            continue
        if n.state is NodeState.CONNECTING:
            continue
        d = n.density
        if n.cpus and d.cpu_density > thresholds.cpu_density:
            out.append(Alert(Severity.WARNING, "cpu-density", "node", n.name,
                             f"{n.name} CPU {_pct(d.cpu_density)} of {n.cpus} cores "
                             f"(> {_pct(thresholds.cpu_density)})"))
        if n.mem_total and d.mem_density > thresholds.mem_density:
            out.append(Alert(Severity.WARNING, "mem-density", "node", n.name,
                             f"{n.name} memory {_pct(d.mem_density)} used (> {_pct(thresholds.mem_density)})"))
        if n.cpus and d.cpu_committed > thresholds.cpu_committed:
            out.append(Alert(Severity.INFO, "cpu-committed", "node", n.name,
                             f"{n.name} CPU limits {d.cpu_committed:.1f}x cores "
                             f"(> {thresholds.cpu_committed:g}x)"))
        if n.mem_total and d.mem_committed > thresholds.mem_committed:
            out.append(Alert(Severity.INFO, "mem-committed", "node", n.name,
                             f"{n.name} memory limits {d.mem_committed:.1f}x RAM "
                             f"(> {thresholds.mem_committed:g}x)"))
    for c in snapshot.containers:
        if c.stale:
            continue  # on a down node: its last known state is not news (the node-down alert is)
        where = f"{c.name} on {c.node}"
        if c.oom_killed and c.state != "running":
            out.append(Alert(Severity.CRITICAL, "oom-killed", "container", c.id,
                             f"{where} OOM-killed" + (f" (exit {c.exit_code})" if c.exit_code is not None else ""),
                             c.node))
        elif c.oom_killed and c.started_at is not None and now - c.started_at <= thresholds.restart_window:
            # dockerd keeps OOMKilled after a start: news only while the restart is recent
            out.append(Alert(Severity.WARNING, "oom-killed", "container", c.id,
                             f"{where} was OOM-killed and restarted", c.node))
        if c.restart_count >= thresholds.restart_loop and (
            c.state == "restarting"
            or (c.started_at is not None and now - c.started_at <= thresholds.restart_window)
        ):
            out.append(Alert(Severity.WARNING, "restart-loop", "container", c.id,
                             f"{where} restart loop ({c.restart_count} restarts)", c.node))
        if c.health == "unhealthy" and c.state == "running":
            out.append(Alert(Severity.WARNING, "unhealthy", "container", c.id, f"{where} unhealthy", c.node))
    for t in snapshot.tenants:
        cpu_use, mem_use = t.cpu_quota_use, t.mem_quota_use
        if cpu_use is not None and cpu_use > 1.0:
            out.append(Alert(Severity.WARNING, "tenant-cpu-quota", "tenant", t.name,
                             f"tenant {t.name} CPU {t.cpu_cores_used:.2f} cores, quota {t.cpu_quota:g} cores "
                             f"({_pct(cpu_use)} of quota)"))
        if mem_use is not None and mem_use > 1.0:
            out.append(Alert(Severity.WARNING, "tenant-mem-quota", "tenant", t.name,
                             f"tenant {t.name} memory at {_pct(mem_use)} of quota"))
    out.sort(key=lambda a: (-a.severity, a.kind, a.text))
    return out
