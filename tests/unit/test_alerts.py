"""Alerts are derived from one snapshot, purely: given a fleet state, these alerts and no others."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))

import fleetdata  # noqa: E402

from console.config import AlertThresholds  # noqa: E402
from console.fleet.alerts import Severity, derive_alerts  # noqa: E402
from console.fleet.model import NodeState  # noqa: E402

NOW = fleetdata.NOW
TH = AlertThresholds()


def kinds(alerts, subject=None):
    return {(a.kind, a.subject) for a in alerts if subject is None or a.subject == subject}


def test_the_reference_fleet_raises_exactly_its_known_problems():
    snap = fleetdata.fleet()
    alerts = derive_alerts(snap, TH, NOW)
    by_id = {c.id: c.name for c in snap.containers}
    got = {(a.kind, by_id.get(a.subject, a.subject)) for a in alerts}
    assert got == {
        ("node-down", "node-4"),
        ("oom-killed", "globex-report"),
        ("cpu-density", "node-2"),
        ("restart-loop", "initech-printer"),
        ("unhealthy", "initech-ledger"),
        ("tenant-cpu-quota", "acme"),
        ("tenant-cpu-quota", "umbrella"),
    }
    assert alerts[0].severity is Severity.CRITICAL
    assert [a.severity for a in alerts] == sorted((a.severity for a in alerts), reverse=True)


def test_node_down_names_the_error_and_is_critical():
    alerts = derive_alerts(fleetdata.fleet(), TH, NOW)
    down = next(a for a in alerts if a.kind == "node-down")
    assert down.severity is Severity.CRITICAL and down.subject_kind == "node"
    assert "connection refused" in down.text


def test_stale_node_data_alerts_and_suppresses_density_figures():
    snap = fleetdata.with_node(fleetdata.fleet(), "node-2", data_age=40.0)
    alerts = derive_alerts(snap, TH, NOW)
    assert ("node-stale", "node-2") in kinds(alerts)
    assert ("cpu-density", "node-2") not in kinds(alerts)  # old figures are not evidence


def test_a_stalled_feed_makes_the_whole_fleet_stale():
    alerts = derive_alerts(fleetdata.fleet(), TH, NOW + TH.stale_after + 5)
    assert alerts[0].kind == "fleet-stale" and alerts[0].severity is Severity.CRITICAL


def test_degraded_node_is_a_warning():
    snap = fleetdata.with_node(fleetdata.fleet(), "node-3", state=NodeState.DEGRADED, error="stats slow")
    a = next(a for a in derive_alerts(snap, TH, NOW) if a.kind == "node-degraded")
    assert a.severity is Severity.WARNING and "stats slow" in a.text


def _container(snap, name):
    return next(c for c in snap.containers if c.name == name)


def _with_container(snap, name, **changes):
    return replace(snap, containers=tuple(replace(c, **changes) if c.name == name else c for c in snap.containers))


def test_restart_loop_needs_recent_restarts_not_just_a_high_count():
    snap = fleetdata.fleet()
    old = _with_container(snap, "acme-db", restart_count=9, started_at=NOW - 86400)
    assert ("restart-loop", _container(snap, "acme-db").id) not in kinds(derive_alerts(old, TH, NOW))
    recent = _with_container(snap, "acme-db", restart_count=3, started_at=NOW - 30)
    assert ("restart-loop", _container(snap, "acme-db").id) in kinds(derive_alerts(recent, TH, NOW))
    below = _with_container(snap, "acme-db", restart_count=2, started_at=NOW - 30)
    assert ("restart-loop", _container(snap, "acme-db").id) not in kinds(derive_alerts(below, TH, NOW))


def test_thresholds_come_from_the_inventory():
    snap = fleetdata.fleet()
    strict = replace(TH, cpu_density=0.1, mem_density=0.1, cpu_committed=0.3, mem_committed=0.05)
    got = kinds(derive_alerts(snap, strict, NOW))
    assert {("cpu-density", "node-1"), ("mem-density", "node-2"), ("cpu-committed", "node-2"),
            ("mem-committed", "node-1")} <= got
    assert not any(k[1] == "node-4" and k[0] != "node-down" for k in got)  # down nodes: no density claims


def test_oom_killed_then_restarted_is_a_warning():
    snap = _with_container(fleetdata.fleet(), "acme-api-3", oom_killed=True, started_at=NOW - 60)
    a = next(a for a in derive_alerts(snap, TH, NOW) if a.kind == "oom-killed" and "acme-api-3" in a.text)
    assert a.severity is Severity.WARNING and a.node == "node-1"


def test_an_oom_kill_long_before_the_current_run_is_not_news():
    """dockerd keeps State.OOMKilled true after a start: once the restart is old, no alert."""
    snap = _with_container(fleetdata.fleet(), "acme-api-3", oom_killed=True, started_at=NOW - 3 * 3600)
    assert not [a for a in derive_alerts(snap, TH, NOW) if a.kind == "oom-killed" and "acme-api-3" in a.text]


def test_tenant_memory_over_quota():
    snap = fleetdata.fleet()
    tenants = tuple(replace(t, mem_quota=1024) if t.name == "globex" else t for t in snap.tenants)
    alerts = derive_alerts(replace(snap, tenants=tenants), TH, NOW)
    assert ("tenant-mem-quota", "globex") in kinds(alerts)


def test_empty_fleet_has_no_alerts():
    snap = fleetdata.build([], nodes_spec=())
    assert derive_alerts(snap, TH, NOW) == []


def test_the_tenant_cpu_alert_says_which_figure_is_the_quota():
    """ "CPU 22.58 of 16 cores" read as a node's 16 cores: the quota is named as the quota."""
    alerts = derive_alerts(fleetdata.fleet(), TH, NOW)
    text = next(a.text for a in alerts if a.kind == "tenant-cpu-quota" and a.subject == "acme")
    assert "quota 8 cores" in text and " of 8 cores" not in text, text
