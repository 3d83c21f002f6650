"""Prometheus alerting rules equivalent to the console's alert strip (console.fleet.alerts).

``render_rules(thresholds)`` writes one rule group from the inventory's ``[alerts]`` thresholds,
so `berth prometheus rules > berth-rules.yml` alerts on what the console would flag: node down,
degraded or stale, density and commitment over threshold, OOM kill, restart loop, tenant over
quota, and a poller whose snapshot stopped moving. Each alert carries `severity` and `kind`
labels with the strip's names, and no `for:` (the strip flags at once; add one to taste).

Tenant rules sum across shards (`sum by (tenant)`): each shard reports its own part of a
tenant, and the quota is the same on every shard (`max by (tenant)`). A shard that stops
answering is Prometheus' `up == 0` for its job: its series go stale, so these rules fall
silent for its nodes rather than see zeros; alert on `up` for that.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.config import AlertThresholds as Thresholds


@dataclass(frozen=True, slots=True)
class Rule:
    alert: str
    kind: str  # the alert strip's kind (console.fleet.alerts.Alert.kind)
    severity: str
    expr: str
    summary: str


def rules(t: Thresholds) -> list[Rule]:
    stale = f"{t.stale_after:g}"
    window = f"{t.restart_window:g}"
    on_c = "on (node, container, tenant)"
    return [
        Rule("BerthSnapshotStale", "fleet-stale", "critical", f"berth_snapshot_age_seconds > {stale}",
             "Berth's poller at {{ $labels.instance }} has published no fresh snapshot for {{ $value | humanize }}s"),
        Rule("BerthNodeDown", "node-down", "critical", 'berth_node_state{state="down"} == 1',
             "{{ $labels.node }} down"),
        Rule("BerthNodeDegraded", "node-degraded", "warning", 'berth_node_state{state="degraded"} == 1',
             "{{ $labels.node }} degraded"),
        Rule("BerthNodeStale", "node-stale", "warning",
             f"berth_node_data_age_seconds > {stale} and on (node) berth_node_up == 1",
             f"{{{{ $labels.node }}}} data {{{{ $value | humanize }}}}s old (stale after {stale}s)"),
        Rule("BerthNodeCPUDensity", "cpu-density", "warning", f"berth_node_cpu_density_ratio > {t.cpu_density:g}",
             f"{{{{ $labels.node }}}} CPU {{{{ $value | humanizePercentage }}}} of its cores "
             f"(> {t.cpu_density * 100:g}%)"),
        Rule("BerthNodeMemoryDensity", "mem-density", "warning",
             f"berth_node_memory_density_ratio > {t.mem_density:g}",
             f"{{{{ $labels.node }}}} memory {{{{ $value | humanizePercentage }}}} used "
             f"(> {t.mem_density * 100:g}%)"),
        Rule("BerthNodeCPUCommitted", "cpu-committed", "info",
             f"berth_node_cpu_committed_ratio > {t.cpu_committed:g}",
             f"{{{{ $labels.node }}}} CPU limits {{{{ $value | printf \"%.1f\" }}}}x cores (> {t.cpu_committed:g}x)"),
        Rule("BerthNodeMemoryCommitted", "mem-committed", "info",
             f"berth_node_memory_committed_ratio > {t.mem_committed:g}",
             f"{{{{ $labels.node }}}} memory limits {{{{ $value | printf \"%.1f\" }}}}x RAM "
             f"(> {t.mem_committed:g}x)"),
        Rule("BerthContainerOOMKilled", "oom-killed", "critical",
             f"berth_container_oom_killed == 1 and {on_c} berth_container_running == 0",
             "{{ $labels.container }} on {{ $labels.node }} OOM-killed"),
        Rule("BerthContainerOOMKilledRestarted", "oom-killed", "warning",
             f"berth_container_oom_killed == 1 and {on_c} berth_container_running == 1"
             f" and {on_c} time() - berth_container_start_time_seconds <= {window}",
             "{{ $labels.container }} on {{ $labels.node }} was OOM-killed and restarted"),
        Rule("BerthContainerRestartLoop", "restart-loop", "warning",
             (f"berth_container_restarts_total >= {t.restart_loop} and {on_c} ("
              f'count by (node, container, tenant) (berth_container_info{{state="restarting"}})'
              f" or time() - berth_container_start_time_seconds <= {window})"),
             "{{ $labels.container }} on {{ $labels.node }} restart loop ({{ $value }} restarts)"),
        Rule("BerthTenantCPUQuota", "tenant-cpu-quota", "warning",
             "sum by (tenant) (berth_tenant_cpu_usage_cores) > max by (tenant) (berth_tenant_cpu_quota_cores)",
             "tenant {{ $labels.tenant }} CPU {{ $value | printf \"%.2f\" }} cores, over its quota"),
        Rule("BerthTenantMemoryQuota", "tenant-mem-quota", "warning",
             "sum by (tenant) (berth_tenant_memory_usage_bytes) > max by (tenant) (berth_tenant_memory_quota_bytes)",
             "tenant {{ $labels.tenant }} memory {{ $value | humanize1024 }}B, over its quota"),
    ]


def _quote(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_rules(t: Thresholds) -> str:
    lines = [
        "# Berth alerting rules: the console's alert strip as Prometheus alerts.",
        f"# Thresholds from the inventory's [alerts]: cpu_density {t.cpu_density:g}, mem_density {t.mem_density:g},"
        f" cpu_committed {t.cpu_committed:g}, mem_committed {t.mem_committed:g},",
        f"# stale_after {t.stale_after:g}s, restart_loop {t.restart_loop}, restart_window {t.restart_window:g}s.",
        "# Generated by `berth prometheus rules`; check with `promtool check rules`.",
        "groups:",
        "  - name: berth",
        "    rules:",
    ]
    for r in rules(t):
        lines += [
            f"      - alert: {r.alert}",
            f"        expr: {_quote(r.expr)}",
            "        labels:",
            f"          severity: {r.severity}",
            f"          kind: {r.kind}",
            "        annotations:",
            f"          summary: {_quote(r.summary)}",
        ]
    return "\n".join(lines) + "\n"
