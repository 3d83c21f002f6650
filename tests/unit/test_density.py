"""Density and tenant aggregation: pure functions over container snapshots."""

from __future__ import annotations

import pytest

from console.fleet.density import UNASSIGNED, node_density, tenants
from console.fleet.model import ContainerSnapshot

GiB = 2**30


def ctr(name: str, *, node: str = "n1", tenant: str = "acme", state: str = "running", cpu: float | None = 50.0,
        mem: int | None = GiB, cpu_limit: float | None = None, mem_limit: int | None = None) -> ContainerSnapshot:
    return ContainerSnapshot(id=name * 4, name=name, node=node, tenant=tenant, image="img", state=state, status="",
                             created=0, started_at=None, cpu_percent=cpu, mem_used=mem, mem_limit=mem_limit,
                             cpu_limit=cpu_limit, restart_count=0, health=None)


def test_node_density_sums_running_containers_only() -> None:
    cs = [ctr("a", cpu=150.0, mem=2 * GiB, cpu_limit=2.0, mem_limit=4 * GiB),
          ctr("b", cpu=50.0, mem=GiB),
          ctr("c", state="exited", cpu=None, mem=None, cpu_limit=8.0, mem_limit=8 * GiB)]
    d = node_density(cpus=4, mem_total=16 * GiB, containers=cs)
    assert (d.running, d.containers) == (2, 3)
    assert d.cpu_cores_used == pytest.approx(2.0)
    assert d.cpu_density == pytest.approx(0.5)
    assert d.mem_used == 3 * GiB
    assert d.mem_density == pytest.approx(3 / 16)
    assert d.containers_per_core == pytest.approx(0.5)
    # committed counts what running containers were promised; the unlimited are counted, not hidden
    assert d.cpu_committed == pytest.approx(2.0 / 4)
    assert d.mem_committed == pytest.approx(4 / 16)
    assert (d.cpu_unlimited, d.mem_unlimited) == (1, 1)


def test_node_density_of_an_unknown_node_is_zero_not_a_crash() -> None:
    d = node_density(cpus=0, mem_total=0, containers=[ctr("a")])
    assert d.cpu_density == 0 and d.mem_density == 0 and d.containers_per_core == 0


def test_tenant_sums_equal_the_sum_of_their_containers() -> None:
    cs = [ctr("a", tenant="acme", cpu=100.0, node="n1"), ctr("b", tenant="acme", cpu=30.0, node="n2"),
          ctr("c", tenant="globex", cpu=10.0), ctr("d", tenant=UNASSIGNED, cpu=5.0),
          ctr("e", tenant="acme", state="exited", cpu=None, mem=None)]
    ts = {t.name: t for t in tenants(cs, {"acme": (2.0, 4 * GiB), "idle": (1.0, None)})}
    acme = ts["acme"]
    assert (acme.containers, acme.running) == (3, 2)
    assert acme.nodes == ("n1", "n2")
    assert acme.cpu_cores_used == pytest.approx(1.3)
    assert acme.mem_used == 2 * GiB
    assert acme.cpu_quota_use == pytest.approx(0.65)
    assert acme.mem_quota_use == pytest.approx(0.5)
    assert acme.top_container == "a"
    assert ts["idle"].containers == 0  # a quota with no containers is still listed
    assert UNASSIGNED in ts
    # sorted hottest first
    assert [t.name for t in tenants(cs)][0] == "acme"


def test_containers_on_a_down_node_are_counted_apart_from_the_live_tenant_figures() -> None:
    from dataclasses import replace

    cs = [ctr("a", node="n1", cpu=100.0, mem=GiB), replace(ctr("b", node="n2", cpu=300.0, mem=4 * GiB), stale=True),
          replace(ctr("c", node="n2", tenant="solo"), stale=True)]
    acme, solo = sorted(tenants(cs), key=lambda t: t.name)
    assert (acme.running, acme.containers, acme.stale_containers) == (1, 1, 1)
    assert acme.cpu_cores_used == pytest.approx(1.0) and acme.mem_used == GiB and acme.nodes == ("n1",)
    assert (solo.running, solo.containers, solo.stale_containers, solo.top_container) == (0, 0, 1, None)


def test_fleet_totals_leave_stale_containers_out_and_alerts_ignore_their_last_known_state() -> None:
    from dataclasses import replace

    from console.config import AlertThresholds
    from console.fleet.alerts import derive_alerts
    from console.fleet.model import FleetSnapshot

    oom = replace(ctr("x", node="n2", state="exited", cpu=None, mem=None), oom_killed=True, exit_code=137)
    cs = (ctr("a"), replace(ctr("b", node="n2"), stale=True), replace(oom, stale=True))
    snap = FleetSnapshot(taken_at=100.0, seq=1, nodes=(), containers=cs, tenants=tenants(cs))
    assert (snap.running, snap.live_containers, snap.stale_containers) == (1, 1, 2)
    assert [a for a in derive_alerts(snap, AlertThresholds(), 100.0) if a.subject_kind == "container"] == []
    assert [a.kind for a in derive_alerts(replace(snap, containers=(oom,)), AlertThresholds(), 100.0)] == \
        ["oom-killed"]
