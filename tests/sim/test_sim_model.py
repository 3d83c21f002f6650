"""The fleet layout and the load model: same seed, same fleet; the incident characters are where they should be."""

from __future__ import annotations

import itertools
import statistics

import pytest

from console.sim import model
from console.sim.model import Flap, Load, plan_fleet, plan_node


def test_same_seed_gives_the_same_fleet() -> None:
    a = plan_fleet(4, 20, seed=5, cgroup="mixed")
    b = plan_fleet(4, 20, seed=5, cgroup="mixed")
    assert a == b
    assert [c.id for _, c in a.containers()] == [c.id for _, c in b.containers()]


def test_another_seed_gives_another_fleet() -> None:
    a = plan_fleet(4, 20, seed=5)
    b = plan_fleet(4, 20, seed=6)
    assert {c.id for _, c in a.containers()}.isdisjoint({c.id for _, c in b.containers()})


def test_a_node_process_plans_exactly_its_node_of_the_fleet() -> None:
    flap = Flap(60, 10)
    fleet = plan_fleet(5, 15, seed=9, cgroup="mixed", flap=flap)
    for i in range(5):
        assert plan_node(i, 5, 15, seed=9, cgroup="mixed", flap=flap) == fleet.nodes[i]


def test_load_walk_is_deterministic_per_seed() -> None:
    def run(seed: str) -> list[tuple[float, float]]:
        load = Load(seed, cpu_base=0.8, cpu_vol=0.06, mem_base=200 * model.MiB, cache_base=50 * model.MiB)
        out = []
        for _ in range(300):
            load.step()
            out.append((load.cpu_demand, load.mem))
        return out

    assert run("x:1") == run("x:1")
    assert run("x:1") != run("x:2")


def test_load_walks_around_its_baseline_and_never_goes_negative() -> None:
    load = Load("walk", cpu_base=0.5, cpu_vol=0.06, mem_base=100 * model.MiB, cache_base=20 * model.MiB)
    cpu, mem = [], []
    for _ in range(3000):
        load.step()
        cpu.append(load.cpu_demand)
        mem.append(load.mem)
    assert min(cpu) > 0 and min(mem) > 0 and load.cache >= 0
    assert 0.35 < statistics.mean(cpu) < 0.75
    assert 80 * model.MiB < statistics.mean(mem) < 120 * model.MiB
    # smooth: one step never jumps more than a burst would
    assert max(abs(a - b) for a, b in itertools.pairwise(cpu)) < 0.5 * 3


def test_a_leak_only_grows() -> None:
    load = Load("leak", cpu_base=0.1, cpu_vol=0.05, mem_base=100 * model.MiB, cache_base=0, leak=2 * model.MiB)
    start = load.mem
    for _ in range(50):
        load.step()
    assert load.mem > start + 60 * model.MiB


def test_the_hot_tenant_is_concentrated_on_the_hot_node_and_oversubscribes_it() -> None:
    fleet = plan_fleet(6, 30, seed=3)
    hot = fleet.containers(model.HOT)
    assert hot, "no hot containers"
    assert {n.name for n, _ in hot} == {fleet.hot_node}
    assert {c.tenant for _, c in hot} == {fleet.hot_tenant}
    node = fleet.node(fleet.hot_node)
    assert sum(c.cpu_base for c in node.containers) > node.ncpu  # demand beyond the node: contention
    for other in fleet.nodes:
        if other.name != fleet.hot_node:
            assert sum(c.cpu_base for c in other.containers) < other.ncpu * 0.7


@pytest.mark.parametrize("role", [model.LEAK, model.CRASHLOOP, model.OOMED, model.UNHEALTHY])
def test_each_incident_character_appears_once_away_from_the_hot_and_flapping_nodes(role: str) -> None:
    fleet = plan_fleet(6, 30, seed=3, flap=Flap(30, 10))
    found = fleet.containers(role)
    assert len(found) == 1
    node, c = found[0]
    assert node.name != fleet.hot_node
    assert node.flap is None
    if role in (model.LEAK, model.CRASHLOOP):
        assert c.restart_policy == "always"
    if role in (model.LEAK, model.OOMED):
        assert c.memory > 0  # an OOM kill needs a limit


def test_most_containers_have_limits_and_some_run_unlimited() -> None:
    cs = [c for _, c in plan_fleet(5, 40, seed=1).containers()]
    mem_limited = sum(1 for c in cs if c.memory) / len(cs)
    cpu_limited = sum(1 for c in cs if c.cpu_limit) / len(cs)
    assert 0.6 < mem_limited < 0.97
    assert 0.5 < cpu_limited < 0.95
    assert any(c.cpu_quota and c.cpu_period for c in cs) and any(c.nano_cpus for c in cs)


def test_the_hot_tenant_is_over_its_quota_and_the_others_are_not() -> None:
    fleet = plan_fleet(6, 30, seed=3)
    node = fleet.node(fleet.hot_node)
    hot_share = sum(min(c.cpu_base, c.cpu_limit or c.cpu_base) for c in node.containers if c.role == model.HOT)
    node_demand = sum(min(c.cpu_base, c.cpu_limit or c.cpu_base) for c in node.containers)
    expected_hot = node.ncpu * 0.97 * hot_share / node_demand  # its share of the saturated node
    elsewhere = sum(c.cpu_base for _, c in fleet.containers(model.NORMAL) if c.tenant == fleet.hot_tenant)
    quota, _ = fleet.quotas[fleet.hot_tenant]
    assert expected_hot + elsewhere > quota * 1.15
    for tenant, (cpu, _) in fleet.quotas.items():
        if tenant != fleet.hot_tenant:
            usage = sum(c.cpu_base for _, c in fleet.containers(model.NORMAL) if c.tenant == tenant)
            assert usage < cpu


def test_mixed_cgroups_alternate_by_node() -> None:
    fleet = plan_fleet(4, 3, seed=0, cgroup="mixed")
    assert [n.cgroup for n in fleet.nodes] == ["1", "2", "1", "2"]
    assert {n.cgroup_driver for n in fleet.nodes} == {"cgroupfs", "systemd"}


def test_flap_goes_to_the_last_node_of_three_or_more() -> None:
    assert plan_fleet(3, 2, flap=Flap(5, 5)).nodes[-1].flap == Flap(5, 5)
    assert all(n.flap is None for n in plan_fleet(2, 2, flap=Flap(5, 5)).nodes)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_fleet(0, 5)
    with pytest.raises(ValueError):
        plan_fleet(2, 5, cgroup="3")
