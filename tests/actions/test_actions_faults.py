"""Migration under faults: the target daemon SIGKILLed mid-way. Whatever happens, the end state has
exactly one running copy, nothing half-made on the target, and an audit record that says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from action_helpers import dk, inventory_for, require_lab, run
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
    client = dk(lab, N2)
    return {"containers": [c.name for c in client.containers.list(all=True)],
            "volumes": [v.name for v in client.volumes.list()],
            "networks": [n.name for n in client.networks.list() if n.name not in ("bridge", "host", "none")]}


async def _migrate_killing_target(lab: Lab, tmp_path: Path, when: str) -> tuple[object, AuditLog]:
    """Migrate web n1 -> n2; SIGKILL n2's dockerd when progress reaches ``when``; bring it back 1 s later."""
    audit = AuditLog(tmp_path / "audit.jsonl", user="tester@lab")
    actions = Actions(inventory_for(lab, tmp_path), audit=audit)
    node = lab.node(N2)
    restarter = threading.Thread(target=lambda: (time.sleep(1.0), node.start()))

    def progress(p: Progress) -> None:
        if not restarter.is_alive() and restarter.ident is None and p.detail.startswith(when):
            node.kill()
            restarter.start()

    try:
        plan = await actions.plan("migrate", "web", to=N2, cleanup_wait=60)
        result = await actions.execute(plan, progress)
    finally:
        await actions.aclose()
        if restarter.ident is not None:
            restarter.join()
    assert restarter.ident is not None, f"progress never reached {when!r}"
    return result, audit


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
