"""What is shown must be true, against real dockerd: a down node's figures, state after an action,
an incomplete stats round, one daemon behind two names, badges of containers that ran before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from dockerlab import BURN_COMMAND, Lab

from console.config import load_inventory
from console.fleet.model import FleetSnapshot, NodeState
from console.fleet.poller import Fleet, Refresh
from console.status import render_tables, to_json

pytestmark = pytest.mark.lab


async def wait_for(fleet: Fleet, predicate: Callable[[FleetSnapshot], bool], timeout: float,
                   what: str) -> FleetSnapshot:
    deadline = time.monotonic() + timeout
    snap = fleet.publish()
    while time.monotonic() < deadline:
        snap = fleet.publish()
        if predicate(snap):
            return snap
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s; nodes "
                         f"{[(n.name, n.state.value, n.error) for n in snap.nodes]}")


async def test_a_down_nodes_containers_are_last_known_and_out_of_the_live_totals(scratch_lab: Lab,
                                                                                tmp_path: Path) -> None:
    """Given two nodes, one running a busy and an idle container of tenant acme, when its dockerd is
    killed (its own pid), then its containers are `running?` (stale, last known figures kept for JSON),
    the fleet's running count leaves them out and counts them apart, and tables show `?`."""
    live, victim = scratch_lab.nodes
    victim.run_container("acme-burn", BURN_COMMAND, tenant="acme", nano_cpus=500_000_000)
    victim.run_container("acme-idle", tenant="acme")
    live.run_container("acme-live", tenant="acme")
    inv = load_inventory(scratch_lab.write_inventory(tmp_path / "inventory.toml"))
    async with Fleet(inv, publish_interval=0.1) as fleet:
        before = await fleet.wait_complete(30)
        assert before.complete and before.running == 3
        burn = next(c for c in before.containers if c.name == "acme-burn")
        assert burn.cpu_percent is not None and burn.cpu_percent > 10
        await asyncio.to_thread(victim.kill)
        snap = await wait_for(fleet, lambda s: s.node(victim.name).state is NodeState.DOWN, 20, "victim down")
    node = snap.node(victim.name)
    assert not node.live and node.data_age is not None
    gone = [c for c in snap.containers if c.node == victim.name]
    assert {c.name for c in gone} == {"acme-burn", "acme-idle"}
    assert all(c.stale and c.state == "running" for c in gone)
    assert snap.running == 1 and snap.live_containers == 1 and snap.stale_containers == 2
    acme = snap.tenant("acme")
    assert (acme.running, acme.containers, acme.stale_containers) == (1, 1, 2)
    assert acme.nodes == (live.name,)

    doc = to_json(snap)
    jnode = next(n for n in doc["nodes"] if n["name"] == victim.name)
    assert jnode["stale"] is True and jnode["state"] == "down" and jnode["data_age"] is not None
    assert jnode["running"] == 2  # the last known, marked stale
    jburn = next(c for c in doc["containers"] if c["name"] == "acme-burn")
    assert jburn["stale"] is True and jburn["state"] == "running" and jburn["cpu_percent"] > 10
    assert jburn["data_age"] >= jnode["data_age"] - 0.5
    assert next(t for t in doc["tenants"] if t["name"] == "acme")["stale_containers"] == 2
    assert doc["stale_containers"] == 2

    tables = render_tables(snap)
    row = next(line for line in tables.splitlines() if line.startswith(victim.name))
    assert "?/2" in row and f"?/{node.cpus}" in row and "0.00/" not in row
    burn_row = next(line for line in tables.splitlines() if line.startswith("acme-burn"))
    assert "running?" in burn_row.split() and "?" in burn_row.split()


# -- state after an action ----------------------------------------------------------------------


@pytest.fixture
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


async def _act(actions, verb: str, spec: str) -> None:
    result = await actions.execute(await actions.plan(verb, spec))
    assert result.ok, result.message


async def test_after_cordon_and_uncordon_a_refresh_shows_the_result_at_once(scratch_lab: Lab,
                                                                           private_state: Path) -> None:
    """Given a fleet whose listing (where cordons are read) is an hour away, when a node is cordoned
    and then uncordoned, then the poller's Refresh of that node shows each result in the next
    snapshot (the console sends it when an action ends): no 15 s of `cordoned` after an uncordon."""
    from functools import partial

    from console.actions import Actions, AuditLog
    from console.fleet.poller import NodeWatcher, Refresh

    node = scratch_lab.nodes[0].name
    inv = load_inventory(scratch_lab.write_inventory(private_state / "inventory.toml"))
    actions = Actions(inv, audit=AuditLog(private_state / "audit.jsonl", user="tester@lab"))
    fleet = Fleet(inv, watcher_factory=partial(NodeWatcher, list_interval=3600))
    try:
        async with fleet:
            await fleet.wait_complete(20)
            await _act(actions, "cordon", node)
            assert not fleet.publish().node(node).cordoned  # the poller alone has not seen it yet
            assert (await fleet.refresh(Refresh(node))).node(node).cordoned
            await _act(actions, "uncordon", node)
            assert not (await fleet.refresh(Refresh(node))).node(node).cordoned
    finally:
        await actions.aclose()


async def test_a_restart_badge_follows_the_lock_and_a_started_oom_kill_is_history(scratch_lab: Lab,
                                                                                 private_state: Path) -> None:
    """Given a container that ignores SIGTERM (a restart holds its lock for the stop timeout) and one
    that was OOM-killed: the RESTART badge shows while the lock exists and is gone as soon as the
    lock is (lock events, no listing); after starting the OOM-killed one, its row and detail say
    running with the new start time, no OOM badge and no old exit code, though dockerd keeps
    State.OOMKilled true."""
    from functools import partial

    from console.actions import Actions, AuditLog
    from console.fleet.poller import NodeWatcher, Refresh
    from console.ui.cells import Context, badge, container_state
    from console.ui.inspect_view import inspect_sections
    from console.ui.screens.detail import facts_markup

    lab_node = scratch_lab.nodes[0]
    stubborn = lab_node.run_container("stubborn", ("sh", "-c", "trap '' TERM; while :; do sleep 1; done"),
                                      init=False, stop_timeout=3)
    oomer = lab_node.run_container("oomer", ("sh", "-c", "sleep 1; head -c 200m /dev/zero | tail"),
                                   mem_limit="16m", memswap_limit="16m")
    inv = load_inventory(scratch_lab.write_inventory(private_state / "inventory.toml"))
    actions = Actions(inv, audit=AuditLog(private_state / "audit.jsonl", user="tester@lab"))
    fleet = Fleet(inv, publish_interval=0.05, watcher_factory=partial(NodeWatcher, list_interval=3600))
    try:
        async with fleet:
            snap = await wait_for(fleet, lambda s: any(c.id == oomer and c.state == "exited" and c.oom_killed
                                                       for c in s.containers), 30, "oomer OOM-killed")
            killed = next(c for c in snap.containers if c.id == oomer)
            assert badge(killed).text == "OOM" and killed.exit_code == 137

            restart = asyncio.create_task(_act(actions, "restart", f"{lab_node.name}/stubborn"))
            await wait_for(fleet, lambda s: next(c.busy for c in s.containers if c.id == stubborn) == "restart",
                           10, "RESTART badge while the lock is held")
            await restart
            after = await wait_for(fleet, lambda s: next(c.busy for c in s.containers if c.id == stubborn) is None,
                                   3, "badge gone with the lock, without a listing")
            assert next(c for c in after.containers if c.id == stubborn).running

            started = time.time()
            await _act(actions, "start", f"{lab_node.name}/oomer")
            snap = await fleet.refresh(Refresh(lab_node.name, oomer))
            now = next(c for c in snap.containers if c.id == oomer)
            with closing(lab_node.client()) as client:
                doc = client.api.inspect_container(oomer)
            assert doc["State"]["OOMKilled"] is True  # what dockerd says after a start
            assert now.state == "running" and now.started_at >= started - 1
            assert badge(now).text == "" and container_state(now).text == "running"
            facts = facts_markup(now, Context(now=time.time()))
            assert "OOM" not in facts and "137" not in facts and "Up " not in facts
            state_line = dict(inspect_sections(doc))["State"][0]
            assert "exit" not in state_line and "OOM" not in state_line
    finally:
        await actions.aclose()


# -- a container whose stats are empty ----------------------------------------------------------


def _cut_cgroup(node, cid: str) -> None:
    """Make dockerd's stats of a running container empty, for real: move its processes to the root
    cgroups and remove its own cgroup directories. The container keeps running; dockerd cannot
    read its figures and publishes empty samples (read 0001-01-01, no CPU, no memory)."""
    import os

    with closing(node.client()) as client:
        pid = client.api.inspect_container(cid)["State"]["Pid"]
    pids = [pid, *(int(p) for p in os.popen(f"pgrep -P {pid}").read().split())]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for ctrl in controllers.removeprefix("name=").split(",") if controllers else ["unified"]:
            own = Path("/sys/fs/cgroup") / ctrl / path.lstrip("/")
            if not path.strip("/") or not own.is_dir():
                continue
            for p in pids:
                (Path("/sys/fs/cgroup") / ctrl / "cgroup.procs").write_text(str(p))
            own.rmdir()
    with closing(node.client()) as client:
        stats = client.api.stats(cid, stream=False)
        assert stats["read"].startswith("0001-01-01") and not stats["cpu_stats"].get("system_cpu_usage")
        assert client.api.inspect_container(cid)["State"]["Status"] == "running"


def test_status_names_a_container_with_empty_stats_exits_1_and_does_not_wait_for_it(make_lab,
                                                                                    tmp_path: Path) -> None:
    """Given a node with a healthy container and one whose stats come back empty, when `berth
    status` runs (with a long --timeout), then the round completes without it (complete: true, so
    the wait did not run out), one stderr line names it and why, JSON lists it under `incomplete`
    with `stats_error`, its CPU is null, and the exit status is 1 (a partial result)."""
    import json
    import subprocess
    import sys

    lab = make_lab(1)
    node = lab.nodes[0]
    node.run_container("healthy", tenant="acme")
    cgless = node.run_container("cgless", tenant="acme")
    _cut_cgroup(node, cgless)
    inventory = lab.write_inventory(tmp_path / "inventory.toml")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "console", "status", "--json", "--inventory", str(inventory),
                           "--timeout", "120"], capture_output=True, text=True, timeout=300)
    print(f"\nstatus with an empty-stats container answered in {time.monotonic() - started:.1f}s (timeout 120)")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["complete"] is True
    assert [(m["name"], m["reason"].split(":")[0]) for m in doc["incomplete"]] == [("cgless", "stats empty")]
    row = next(c for c in doc["containers"] if c["name"] == "cgless")
    assert row["state"] == "running" and row["cpu_percent"] is None and row["stats_error"].startswith("stats empty")
    assert next(c for c in doc["containers"] if c["name"] == "healthy")["stats_error"] is None
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cgless" in lines[0] and "stats empty" in lines[0]

    tables = subprocess.run([sys.executable, "-m", "console", "status", "--inventory", str(inventory),
                             "--timeout", "120"], capture_output=True, text=True, timeout=300)
    assert tables.returncode == 1 and "stats round incomplete for 1 container" in tables.stderr
    assert "cgless" in tables.stdout


# -- one daemon behind two names ------------------------------------------------------------------


async def test_one_daemon_under_two_names_is_counted_once_and_the_second_says_so(make_lab,
                                                                                tmp_path: Path) -> None:
    """Given an inventory naming one lab daemon twice, once by its socket and once by a symlink to
    it (spellings no text comparison can match), when Berth connects, then the second node is an
    error naming the first and the daemon's ID, and every container is counted once."""
    import os

    from console.config import parse_inventory

    lab = make_lab(1)
    node = lab.nodes[0]
    node.run_container("once", tenant="acme")
    link = tmp_path / "alias.sock"
    os.symlink(node.sock, link)
    inv = parse_inventory(f'[[node]]\nname = "first"\nurl = "{node.url}"\n\n'
                          f'[[node]]\nname = "second"\nurl = "unix://{link}"\n')
    with closing(node.client()) as client:
        engine_id = client.info()["ID"]
    async with Fleet(inv, publish_interval=0.1) as fleet:
        snap = await wait_for(fleet, lambda s: s.node("second").state is NodeState.DOWN
                              and s.node("first").state is NodeState.UP and s.complete, 30, "second refused")
        await asyncio.sleep(2.5)  # a heartbeat and a reconnect later it is still refused, still not counted
        snap = fleet.publish()
    second = snap.node("second")
    assert second.state is NodeState.DOWN
    assert second.error.startswith(f"same engine as node first (ID {engine_id[:12]}")
    assert [c.name for c in snap.containers] == ["once"] and snap.containers[0].node == "first"
    assert snap.running == 1 and snap.stale_containers == 0 and snap.tenant("acme").running == 1


# -- badges of a container that no longer runs ----------------------------------------------------


async def test_a_stopped_container_dockerd_still_calls_unhealthy_has_no_unh_badge(make_lab, tmp_path: Path) -> None:
    """Given a container whose health check fails, stopped (as a migration's kept source is):
    dockerd keeps Health.Status `unhealthy` on it, and Berth shows no UNH badge and no alert."""
    from console.config import AlertThresholds
    from console.fleet.alerts import derive_alerts
    from console.ui.cells import badge

    lab = make_lab(1)
    node = lab.nodes[0]
    with closing(node.client()) as client:
        api = client.api
        cid = api.create_container("berth/busybox:test", ["sleep", "100000"], name="web-migrated-0101",
                                   healthcheck={"test": ["CMD", "false"], "interval": 300_000_000, "retries": 1},
                                   host_config=api.create_host_config(init=True))["Id"]
        api.start(cid)
        deadline = time.monotonic() + 30
        while (api.inspect_container(cid)["State"].get("Health") or {}).get("Status") != "unhealthy":
            assert time.monotonic() < deadline, "health check never failed"
            await asyncio.sleep(0.2)
        inv = load_inventory(lab.write_inventory(tmp_path / "inventory.toml"))
        async with Fleet(inv, publish_interval=0.1) as fleet:
            snap = await fleet.wait_complete(20)
            running = next(c for c in snap.containers if c.id == cid)
            assert running.health == "unhealthy" and badge(running).text == "UNH"
            api.stop(cid, timeout=1)
            assert api.inspect_container(cid)["State"]["Health"]["Status"] == "unhealthy"
            await wait_for(fleet, lambda s: any(c.id == cid and c.state == "exited" for c in s.containers),
                           10, "stopped")
            snap = await fleet.refresh(Refresh(node.name, cid))  # its inspect after the stop
    kept = next(c for c in snap.containers if c.id == cid)
    assert kept.health == "unhealthy"  # what dockerd says
    assert badge(kept).text == ""
    assert not [a for a in derive_alerts(snap, AlertThresholds(), time.time()) if a.subject == cid]
