"""Migration under faults: the target or the source daemon SIGKILLed mid-way (and brought back a second
later, as systemd would). Whatever happens, the end state has exactly one running copy, nothing
half-made on the target, no journal left behind, and an audit record that says which copy runs where."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from action_helpers import dk, inventory_for, require_lab, run, running, target_side
from dockerlab import Lab

from console.actions import Actions, AuditLog, Progress

pytestmark = pytest.mark.lab
N1, N2 = "lab-n1", "lab-n2"


@pytest.fixture
def flab() -> Iterator[Lab]:
    """Two fresh nodes per test: these tests kill daemons."""
    require_lab()
    lab = Lab(2, prefix="berth-flt-")
    try:
        lab.start()
        lab.import_image()
        yield lab
    finally:
        lab.close()


def _workload(lab: Lab) -> None:
    src = dk(lab, N1)
    src.networks.create("app", driver="bridge")
    c = run(lab, N1, "web", network="app", mem_limit="64m", restart_policy={"Name": "always"},
            volumes={"appdata": {"bind": "/data", "mode": "rw"}})
    c.exec_run(["sh", "-c", "dd if=/dev/urandom of=/data/blob bs=1M count=16 2>/dev/null"])


def _target_side(lab: Lab) -> dict[str, list[str]]:
    return target_side(lab, N2)


def _running(lab: Lab) -> list[tuple[str, str]]:
    return running(lab, (N1, N2))


async def _migrate_killing(lab: Lab, tmp_path: Path, victim: str, when: str,
                           **params: object) -> tuple[object, AuditLog]:
    """Migrate web n1 -> n2; SIGKILL ``victim``'s dockerd when progress reaches ``when``; bring it back 1 s
    later."""
    audit = AuditLog(tmp_path / "audit.jsonl", user="tester@lab")
    actions = Actions(inventory_for(lab, tmp_path), audit=audit)
    node = lab.node(victim)
    restarter = threading.Thread(target=lambda: (time.sleep(1.0), node.start()))

    def progress(p: Progress) -> None:
        if not restarter.is_alive() and restarter.ident is None and p.detail.startswith(when):
            node.kill()
            restarter.start()

    try:
        plan = await actions.plan("migrate", "web", to=N2, cleanup_wait=60, **params)
        result = await actions.execute(plan, progress)
    finally:
        await actions.aclose()
        if restarter.ident is not None:
            restarter.join()
    assert restarter.ident is not None, f"progress never reached {when!r}"
    assert not list((tmp_path / "migrations").glob("*.json")), "a migration that ended left its journal"
    return result, audit


async def _migrate_killing_target(lab: Lab, tmp_path: Path, when: str) -> tuple[object, AuditLog]:
    return await _migrate_killing(lab, tmp_path, N2, when)


async def test_target_killed_during_pre_copy_leaves_source_running_and_target_clean(
        flab: Lab, tmp_path: Path) -> None:
    _workload(flab)
    result, audit = await _migrate_killing_target(flab, tmp_path, "volume data")
    assert not result.ok and "failed in pre-copy" in result.message and "rolled back" in result.message
    src = dk(flab, N1).containers.get("web")
    assert src.status == "running" and src.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert _target_side(flab) == {"containers": [], "volumes": [], "networks": []}
    [entry] = audit.read()
    assert entry["ok"] is False
    assert entry["phases"][-1]["phase"] == "rollback" and entry["phases"][-1]["ok"] is True
    assert "target side on lab-n2 removed" in entry["details"]["rolled_back"]


async def test_target_killed_during_switch_restarts_the_source(flab: Lab, tmp_path: Path) -> None:
    _workload(flab)
    result, audit = await _migrate_killing_target(flab, tmp_path, "source stopped")
    assert not result.ok and "failed in switch" in result.message
    src = dk(flab, N1).containers.get("web")
    assert src.status == "running" and src.name == "web"
    assert src.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert _target_side(flab) == {"containers": [], "volumes": [], "networks": []}
    running = [c.name for n in (N1, N2) for c in dk(flab, n).containers.list()]
    assert running == ["web"]
    [entry] = audit.read()
    notes = entry["details"]["rolled_back"]
    assert f"source restarted on {N1}" in notes and "target side on lab-n2 removed" in notes
    assert [p["phase"] for p in entry["phases"]] == ["plan", "pre-copy", "switch", "rollback"]
    assert entry["phases"][2]["ok"] is False


# -- the source node dies ----------------------------------------------------------------------------

async def test_source_killed_during_pre_copy_rolls_back_and_the_source_runs_again(
        flab: Lab, tmp_path: Path) -> None:
    # Given web running on n1 with a 16 MiB volume
    _workload(flab)
    # When n1's dockerd is SIGKILLed while its volume is being copied (and restarted 1 s later)
    result, audit = await _migrate_killing(flab, tmp_path, N1, "volume data")
    # Then the migration rolled back: web runs on n1 only, as before, and n2 has nothing of it
    assert not result.ok and "failed in pre-copy" in result.message
    src = dk(flab, N1).containers.get("web")
    assert src.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert _running(flab) == [(N1, "web")]
    assert _target_side(flab) == {"containers": [], "volumes": [], "networks": []}
    # And the audit's end record says where the one copy runs
    [entry] = audit.read()
    assert entry["ok"] is False and entry["phases"][-1]["phase"] == "rollback" and entry["phases"][-1]["ok"]
    outcome = entry["details"]["outcome"]
    assert "target side on lab-n2 removed" in outcome
    assert re.search(f"source (running|restarted) on {N1}", outcome), outcome


async def test_source_killed_after_the_stop_waits_for_its_node_and_restarts_it(flab: Lab, tmp_path: Path) -> None:
    # Given web (restart policy always) running on n1
    _workload(flab)
    # When n1's dockerd is SIGKILLed right after web was stopped there, before the final copy
    result, audit = await _migrate_killing(flab, tmp_path, N1, "source stopped")
    # Then rollback waited for n1 to come back and started web there with its own restart policy
    assert not result.ok and "failed in switch" in result.message
    src = dk(flab, N1).containers.get("web")
    assert src.name == "web" and src.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert _running(flab) == [(N1, "web")]
    assert _target_side(flab) == {"containers": [], "volumes": [], "networks": []}
    [entry] = audit.read()
    assert f"source restarted on {N1}" in entry["details"]["outcome"]
    assert [p["phase"] for p in entry["phases"]] == ["plan", "pre-copy", "switch", "rollback"]


async def test_source_killed_in_finalize_the_move_stands_and_the_rename_waits_for_the_node(
        flab: Lab, tmp_path: Path) -> None:
    # Given web running on n1 with data in its volume
    _workload(flab)
    before = dk(flab, N1).containers.get("web").exec_run(["md5sum", "/data/blob"]).output.split()[0]
    # When n1's dockerd is SIGKILLed as the stopped source is being renamed (the target already runs)
    result, audit = await _migrate_killing(flab, tmp_path, N1, "keeping the stopped source")
    # Then the move stands: web runs on n2 with the data, and the source is kept, renamed, stopped, policy no
    assert result.ok, result.message
    assert _running(flab) == [(N2, "web")]
    moved = dk(flab, N2).containers.get("web")
    assert moved.exec_run(["md5sum", "/data/blob"]).output.split()[0] == before
    assert moved.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    [kept] = dk(flab, N1).containers.list(all=True)
    assert kept.name.startswith("web-migrated-") and kept.status == "exited"
    assert kept.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    [entry] = audit.read()
    assert entry["ok"] is True and entry["details"]["source_kept_as"] == kept.name
    assert f"running on {N2}" in entry["details"]["outcome"] and kept.name in entry["details"]["outcome"]


async def _migrate_with_source_down(lab: Lab, tmp_path: Path, when: str) -> tuple[object, Actions, AuditLog]:
    """Kill n1 at ``when`` and keep it down longer than the migration waits for it (source_wait=1)."""
    audit = AuditLog(tmp_path / "audit.jsonl", user="tester@lab")
    actions = Actions(inventory_for(lab, tmp_path), audit=audit)
    node = lab.node(N1)

    def progress(p: Progress) -> None:
        if node.running and p.detail.startswith(when):
            node.kill()

    plan = await actions.plan("migrate", "web", to=N2, cleanup_wait=60, source_wait=1.0)
    result = await actions.execute(plan, progress)
    assert not node.running, f"progress never reached {when!r}"
    return result, actions, audit


async def test_source_down_for_good_after_the_stop_is_reported_and_recovered_when_it_is_back(
        flab: Lab, tmp_path: Path) -> None:
    # Given web on n1, and n1 dying right after web was stopped there, not back within the wait
    _workload(flab)
    result, actions, audit = await _migrate_with_source_down(flab, tmp_path, "source stopped")
    try:
        # Then the migration says plainly the source was not restarted, and how to finish the rollback
        assert not result.ok and f"SOURCE NOT RESTARTED on {N1}" in result.message
        assert f"berth recover {result.audit_id} --rollback" in result.message
        assert _target_side(flab) == {"containers": [], "volumes": [], "networks": []}
        [unfinished], errors = actions.unfinished()
        assert errors == [] and unfinished.audit_id == result.audit_id and unfinished.phase == "rollback"
        # When n1 is back and the operator completes the rollback
        flab.node(N1).start()
        plan = await actions.plan("recover", result.audit_id, mode="rollback")
        done = await actions.execute(plan)
    finally:
        await actions.aclose()
    # Then web runs on n1 with its restart policy, the lock is gone, the journal too
    assert done.ok, done.message
    assert _running(flab) == [(N1, "web")]
    assert dk(flab, N1).containers.get("web").attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert [c.name for c in dk(flab, N1).containers.list(all=True)] == ["web"]
    assert actions.unfinished() == ([], [])
    entries = {e["action"]: e for e in audit.read()}
    assert entries["recover"]["ok"] and "source restarted on lab-n1" in entries["recover"]["details"]["outcome"]


async def test_source_down_for_good_in_finalize_the_move_stands_and_finish_renames_it_later(
        flab: Lab, tmp_path: Path) -> None:
    # Given n1 dying as the stopped source is renamed, and not back within the wait
    _workload(flab)
    result, actions, audit = await _migrate_with_source_down(flab, tmp_path, "keeping the stopped source")
    try:
        # Then the move stands (web runs on n2) and the result says what stays on n1 and how to finish
        assert result.ok and f"stays on {N1} as web" in result.message and "--finish" in result.message
        assert [c.name for c in dk(flab, N2).containers.list()] == ["web"]
        # When n1 is back: web there stays stopped (policy no), one copy runs; the operator finishes
        flab.node(N1).start()
        assert _running(flab) == [(N2, "web")]
        done = await actions.execute(await actions.plan("recover", result.audit_id, mode="finish"))
    finally:
        await actions.aclose()
    # Then the source is kept renamed, the lock is gone, web runs on n2 only
    assert done.ok, done.message
    [kept] = dk(flab, N1).containers.list(all=True)
    assert kept.name.startswith("web-migrated-") and kept.status == "exited"
    assert _running(flab) == [(N2, "web")]
    assert actions.unfinished() == ([], [])
