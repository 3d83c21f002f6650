"""`berth prometheus rules`: alerting rules that promtool accepts and that fire exactly where the
console's alert strip does, checked by `promtool test rules` on the series Berth exports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleetdata  # noqa: E402
from test_metrics_exposition import scrape  # noqa: E402

from console.config import AlertThresholds, parse_inventory  # noqa: E402
from console.fleet.alerts import derive_alerts  # noqa: E402
from console.metrics.rules import render_rules  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
# Without promtool these skip loudly; CI (BERTH_REQUIRE_LAB=1, .ci/run installs it) must have it.
pytestmark = pytest.mark.skipif(PROMTOOL is None and os.environ.get("BERTH_REQUIRE_LAB") != "1",
                                reason="LAB SKIPPED: promtool not installed (apt-get install prometheus)")
EVAL = 60  # seconds into the promtool test when alerts are checked
# The strip's kinds these rules cover; `unhealthy` is not exported (no health series yet).
NOT_EXPORTED = {"unhealthy"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, timeout=120)


def series_text(name: str, labels: frozenset[tuple[str, str]]) -> str:
    inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels))
    return f"{name}{{{inner}}}"


def test_the_rules_pass_promtool_check_with_default_and_inventory_thresholds(tmp_path: Path) -> None:
    """Given the default thresholds and an inventory's own [alerts], `berth prometheus rules` prints a
    file promtool accepts, carrying those thresholds."""
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///run/a.sock"\n'
                   "[alerts]\ncpu_density = 0.75\nstale_after = 30\nrestart_loop = 5\n")
    done = subprocess.run([sys.executable, "-m", "console", "prometheus", "rules", "--inventory", str(inv)],
                          check=False, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "berth_node_cpu_density_ratio > 0.75" in done.stdout
    assert "berth_node_data_age_seconds > 30" in done.stdout
    assert "berth_container_restarts_total >= 5" in done.stdout
    for text, name in ((done.stdout, "custom.yml"), (render_rules(AlertThresholds()), "default.yml")):
        (tmp_path / name).write_text(text)
        checked = promtool("check", "rules", str(tmp_path / name))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "SUCCESS: 13 rules found" in checked.stdout


def test_the_rules_fire_where_the_alert_strip_does(tmp_path: Path) -> None:
    """Given the reference fleet (a node down, a hot node, an OOM kill, a restart loop, two tenants over
    quota) scraped as Berth exports it, when promtool evaluates the rules on those series, then the
    firing alerts are exactly the strip's (derive_alerts on the same snapshot), by kind and subject."""
    snap = fleetdata.fleet()
    got = scrape(snap)
    series = []
    for (name, labels), v in sorted(got.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
        if name == "berth_container_start_time_seconds":
            v = v - fleetdata.NOW + EVAL  # promtool's clock starts at 0: keep "how long ago" the same
        series.append({"series": series_text(name, labels), "values": f"{v!r}+0x{EVAL // 15 + 2}"})
    by_id = {c.id: c for c in snap.containers}
    expected = set()
    for a in derive_alerts(snap, fleetdata.inventory().alerts, fleetdata.NOW):
        if a.kind in NOT_EXPORTED:
            continue
        if a.subject_kind == "container":
            c = by_id[a.subject]
            expected.add((a.kind, c.node, c.name, c.tenant))
        elif a.subject_kind == "node":
            expected.add((a.kind, a.subject, "", ""))
        elif a.subject_kind == "tenant":
            expected.add((a.kind, "", "", a.subject))
        else:
            expected.add((a.kind, "", "", ""))
    assert {e[0] for e in expected} >= {"node-down", "cpu-density", "oom-killed", "restart-loop",
                                        "tenant-cpu-quota"}
    exp_samples = []
    for kind, node, container, tenant in sorted(expected):
        labels = {"kind": kind, "node": node, "container": container, "tenant": tenant}
        inner = ",".join(f"{k}={json.dumps(v)}" for k, v in labels.items() if v)
        exp_samples.append({"labels": f"{{{inner}}}", "value": 1})
    (tmp_path / "rules.yml").write_text(render_rules(fleetdata.inventory().alerts))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": series,
            "promql_expr_test": [{
                "expr": 'count by (kind, node, container, tenant) (ALERTS{alertstate="firing"})',
                "eval_time": f"{EVAL}s",
                "exp_samples": exp_samples,
            }],
            "alert_rule_test": [{
                "eval_time": f"{EVAL}s",
                "alertname": "BerthNodeDown",
                "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "kind": "node-down", "node": "node-4", "state": "down"},
                    "exp_annotations": {"summary": "node-4 down"},
                }],
            }],
        }],
    }
    (tmp_path / "test.yml").write_text(json.dumps(test, indent=1))  # JSON is YAML
    done = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_quiet_fleet_fires_nothing_and_a_restart_long_ago_is_not_a_loop(tmp_path: Path) -> None:
    """Given one healthy node whose container restarted 5 times an hour ago and runs quietly since, no
    alert fires (the strip agrees); once it shows `restarting`, the restart loop fires."""
    th = AlertThresholds()
    quiet = replace(fleetdata.make_container(
        ("svc", "node-1", "acme", "svc:1", "running", 5.0, 100, 512, 1.0, {"restart_count": 5})),
        started_at=fleetdata.NOW - 3600)
    assert derive_alerts(fleetdata.build([quiet], nodes_spec=fleetdata.NODES[:1]), th, fleetdata.NOW) == []
    started = EVAL - 3600
    base = 'node="node-1",container="svc",tenant="acme"'
    series = [
        {"series": 'berth_node_up{node="node-1"}', "values": "1+0x10"},
        {"series": 'berth_node_data_age_seconds{node="node-1"}', "values": "0.5+0x10"},
        {"series": 'berth_node_cpu_density_ratio{node="node-1"}', "values": "0.1+0x10"},
        {"series": f"berth_container_restarts_total{{{base}}}", "values": "5+0x10"},
        {"series": f"berth_container_running{{{base}}}", "values": "1 1 1 1 1 0 0 0 0 0"},
        {"series": f"berth_container_oom_killed{{{base}}}", "values": "0+0x10"},
        {"series": f"berth_container_start_time_seconds{{{base}}}", "values": f"{started}+0x10"},
        {"series": f'berth_container_info{{{base},id="abc",image="svc:1",state="running"}}',
         "values": "1 1 1 1 1 _ _ _ _ _"},
        {"series": f'berth_container_info{{{base},id="abc",image="svc:1",state="restarting"}}',
         "values": "_ _ _ _ _ 1 1 1 1 1"},
    ]
    (tmp_path / "rules.yml").write_text(render_rules(th))
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s", "input_series": series,
        "promql_expr_test": [
            {"expr": 'count(ALERTS{alertstate="firing"}) or vector(0)', "eval_time": "45s",
             "exp_samples": [{"labels": "{}", "value": 0}]},
        ],
        "alert_rule_test": [
            {"eval_time": "45s", "alertname": "BerthContainerRestartLoop", "exp_alerts": []},
            {"eval_time": "90s", "alertname": "BerthContainerRestartLoop", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "kind": "restart-loop", "node": "node-1",
                               "container": "svc", "tenant": "acme"},
                "exp_annotations": {"summary": "svc on node-1 restart loop (5 restarts)"}}]},
        ],
    }]}
    (tmp_path / "test.yml").write_text(json.dumps(test, indent=1))
    done = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_tenant_quota_sums_the_tenant_across_shards(tmp_path: Path) -> None:
    """Given tenant acme using 1.5 cores on each of two shards with a 2-core quota (reported by both),
    the quota alert fires on the 3-core total though neither shard alone is over."""
    series = []
    for shard in ("a:9417", "b:9417"):
        series.append({"series": f'berth_tenant_cpu_usage_cores{{instance="{shard}",tenant="acme"}}',
                       "values": "1.5+0x10"})
        series.append({"series": f'berth_tenant_cpu_quota_cores{{instance="{shard}",tenant="acme"}}',
                       "values": "2+0x10"})
    (tmp_path / "rules.yml").write_text(render_rules(AlertThresholds()))
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s", "input_series": series,
        "alert_rule_test": [{"eval_time": "30s", "alertname": "BerthTenantCPUQuota", "exp_alerts": [{
            "exp_labels": {"severity": "warning", "kind": "tenant-cpu-quota", "tenant": "acme"},
            "exp_annotations": {"summary": "tenant acme CPU 3.00 cores, over its quota"}}]}],
    }]}
    (tmp_path / "test.yml").write_text(json.dumps(test, indent=1))
    done = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_thresholds_come_from_the_inventory() -> None:
    inv = parse_inventory('[[node]]\nname = "a"\nurl = "unix:///run/a.sock"\n[alerts]\nmem_committed = 2.5\n')
    assert "berth_node_memory_committed_ratio > 2.5" in render_rules(inv.alerts)
